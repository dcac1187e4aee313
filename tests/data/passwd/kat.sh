#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# kat.sh: regenerates the known answers that tests/unit/test_passwd.c holds as literals,
# with tools independent of warden's code (coreutils, Python's hashlib, OpenSSL's CLI,
# Apache's htpasswd, the argon2 CLI, and two JavaScript implementations from npm:
# bcryptjs and hash-wasm). Not run by the tests: run it by hand after changing a vector.
# bcrypt and argon2 outputs are salted at random by htpasswd, so those lines print a new
# (equally valid) vector each time; the others are deterministic.
#
#   apt-get install coreutils python3 openssl apache2-utils argon2   # (not in make deps: only this script needs them)
#   optional: (cd /tmp/kat && npm install bcryptjs hash-wasm) and NODE_PATH=/tmp/kat/node_modules
set -eu

x72=$(head -c 72 /dev/zero | tr '\0' x)

echo "== digests (salt 'pepper', password 'hunter2')"
printf 'pepperhunter2' | md5sum
printf 'hunter2pepper' | md5sum
printf 'pepperhunter2' | sha1sum
printf 'hunter2pepper' | sha1sum
printf 'pepperhunter2' | sha256sum
printf 'hunter2pepper' | sha256sum
printf 'pepperhunter2' | openssl dgst -sha512 -r
printf 'hunter2pepper' | sha512sum
printf 'hunter2' | sha256sum                  # no salt
printf 'pepper' | sha256sum                   # empty password, prefix salt
printf 'a\0b' | sha256sum                     # NUL inside the password
printf '\377\000shunter2' | sha256sum         # raw salt bytes 0xff 0x00 's'
{ printf pepper; head -c 65536 /dev/zero | tr '\0' x; } | sha256sum   # 64 KiB password

echo "== pbkdf2 (password 'hunter2', salt 'pepper', 1000 iterations)"
for mac in sha1 sha224 sha256 sha384 sha512; do
    /usr/bin/python3 -c "import hashlib; print('$mac', hashlib.pbkdf2_hmac('$mac', b'hunter2', b'pepper', 1000).hex())"
done
openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt pass:hunter2 -kdfopt salt:pepper \
    -kdfopt iter:1000 PBKDF2
/usr/bin/python3 -c "import hashlib; print(hashlib.pbkdf2_hmac('sha256', b'hunter2', b'pepper', 1000, 40).hex())"
/usr/bin/python3 -c "import hashlib; print(hashlib.pbkdf2_hmac('sha256', b'hunter2', b'pepper', 1000, 10).hex())"
/usr/bin/python3 -c "import hashlib; print(hashlib.pbkdf2_hmac('sha256', b'', b'pepper', 1000).hex())"
/usr/bin/python3 -c "import hashlib; print(hashlib.pbkdf2_hmac('sha256', b'x' * 65536, b'pepper', 1000).hex())"
/usr/bin/python3 -c "import hashlib; print(hashlib.pbkdf2_hmac('sha256', b'hunter2', b'', 1).hex())"
# RFC 6070 (published): password/salt c=1 and c=4096; "pass\0word"/"sa\0lt" c=4096 dkLen=16
/usr/bin/python3 -c "import hashlib; print(hashlib.pbkdf2_hmac('sha1', b'password', b'salt', 1).hex())"
/usr/bin/python3 -c "import hashlib; print(hashlib.pbkdf2_hmac('sha1', b'password', b'salt', 4096).hex())"
/usr/bin/python3 -c "import hashlib; print(hashlib.pbkdf2_hmac('sha1', b'pass\0word', b'sa\0lt', 4096, 16).hex())"

echo "== bcrypt (random salts: new vectors each run)"
htpasswd -bnBC 10 u hunter2
htpasswd -bnBC 4 u hunter2
htpasswd -bnBC 4 u ''
htpasswd -bnBC 4 u "$x72"
htpasswd -bnBC 4 u 'pässwörd'
if command -v node >/dev/null && node -e 'require("bcryptjs")' 2>/dev/null; then
    node -e 'const b = require("bcryptjs");
        console.log(b.hashSync("hunter2", "$2a$04$abcdefghijklmnopqrstuu"));
        console.log(b.hashSync("hunter2", "$2b$04$abcdefghijklmnopqrstuu"));
        // Openwall crypt_blowfish published vectors
        console.log(b.compareSync("U*U", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"));'
fi

echo "== argon2id (salt 'saltsaltsalt')"
printf hunter2 | argon2 saltsaltsalt -id -t 2 -m 10 -p 1 -l 32 -e
printf hunter2 | argon2 saltsaltsalt -id -t 1 -m 8 -p 2 -l 32 -e
printf hunter2 | argon2 saltsaltsalt -id -t 1 -m 8 -p 1 -l 32 -v 10 -e
printf 'a\0b' | argon2 saltsaltsalt -id -t 1 -m 8 -p 1 -l 32 -e
if command -v node >/dev/null && node -e 'require("hash-wasm")' 2>/dev/null; then
    # the argon2 CLI reads at most 127 bytes: the 64 KiB vector comes from hash-wasm
    node -e 'const { argon2id } = require("hash-wasm");
        argon2id({ password: "x".repeat(65536), salt: "saltsaltsalt", parallelism: 1,
                   iterations: 1, memorySize: 256, hashLength: 32, outputType: "encoded" })
            .then(console.log);'
fi
