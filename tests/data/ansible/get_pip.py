"""Stand-in for ansible-test's pip bootstrap script (get-pip.py from ci-files.testing.ansible.com,
which this machine cannot reach): pip from the interpreter's own ensurepip, then the requested
packages (pip==<version>) from the package index, as get-pip.py would install them.
ansible-test runs it as `python quiet_pip.py [pip options] pip==X` with GET_PIP pointing here."""
import os
import subprocess
import sys

subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"])
# ensurepip hides the pip configuration from its own run only; the index settings apply here.
env = dict(os.environ)
env.pop("PIP_CONFIG_FILE", None)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "pip", "install", "-q"] + args, env=env)
