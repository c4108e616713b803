# Write a host file outside scratch (§5.17).
open(target, 'w').write('x')
