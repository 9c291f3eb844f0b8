#!/usr/bin/env bash
# Gradescope runs this once, when it builds the autograder image: a Python of 3.11 or later and minilab's
# dependencies in a virtual environment.  minilab itself travels in this zip (source/minilab) and runs on its
# pure-NumPy path, so nothing is compiled here.
set -euo pipefail
apt-get update -q
apt-get install -y -q python3 python3-venv python3-pip
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "setup.sh: minilab needs Python 3.11 or later, this image has $(python3 --version); choose the" \
         "Ubuntu 24.04 base image in the autograder settings" >&2
    exit 1
fi
python3 -m venv /autograder/venv
/autograder/venv/bin/pip install -q "numpy>=2" "pillow>=10" "tqdm>=4.60" "hypothesis>=6" "pytest>=7"
