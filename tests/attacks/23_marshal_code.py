# marshal.loads builds code objects from bytes.
import marshal
code = marshal.loads(marshal.dumps(compile('1', 'x', 'eval')))
