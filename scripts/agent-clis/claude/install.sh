#!/bin/sh
# Run by the image build (no network), in /opt/am/clis/claude. What the package's own
# postinstall (install.cjs, never run) would do: use the platform package's native binary.
set -eu
ln -s "$PWD/node_modules/@anthropic-ai/claude-code-linux-x64/claude" /opt/am/bin/claude
