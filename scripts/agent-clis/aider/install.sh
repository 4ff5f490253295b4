#!/bin/sh
# Run by the image build (no network), in /opt/am/clis/aider: a virtual environment on the
# image's python3 (3.11), filled from the fetched wheels only, each checked against its hash.
set -eu
python3 -m venv --without-pip venv
set -- wheels/pip-*.whl
venv/bin/python "$1/pip" install --quiet --no-index --find-links wheels \
    --no-deps --only-binary :all: --require-hashes -r requirements.txt
rm -rf wheels
ln -s "$PWD/venv/bin/aider" /opt/am/bin/aider
