# /etc/shadow and friends.
for p in ('/etc/shadow', '/etc/passwd', '/etc/hostname'):
    try:
        print(open(p).read())
    except Exception as e:
        print(type(e).__name__)
