import sys

from keystone_checks.lab.cli import main

sys.exit(main(sys.argv[1:]))
