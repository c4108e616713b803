# io.open writes without the open builtin (§5.7).
import io
io.open(target, 'w').write('x')
