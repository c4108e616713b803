# Allocate until something gives.
x = []
while True:
    x.append(' ' * 10**7)
