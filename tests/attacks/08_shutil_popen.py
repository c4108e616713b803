# os.popen through shutil.os (§5.5).
import shutil
shutil.os.popen('touch ' + target).read()
