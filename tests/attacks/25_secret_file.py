# A host file outside scratch (§5.17).
print(open(secret_path).read())
