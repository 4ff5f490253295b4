#!/bin/sh
# Run by the image build (no network), in /opt/am/clis/codex. bin/codex.js (the image's
# Node.js 18) finds the native binary in the platform package beside it.
set -eu
ln -s "$PWD/node_modules/@openai/codex/bin/codex.js" /opt/am/bin/codex
