# A host file through pathlib under the default policy.
import pathlib
print(pathlib.Path(secret_path).read_text())
