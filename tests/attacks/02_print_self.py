# print.__self__ is the builtins module (§5.2).
print.__self__.__import__('os').system('touch ' + target)
