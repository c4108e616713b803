# Write into the read-only system view.
for p in ('/usr/spr_attack_marker', '/usr/lib/spr_attack_marker'):
    try:
        open(p, 'w').write('x')
    except Exception as e:
        print(type(e).__name__)
