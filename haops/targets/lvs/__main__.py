"""`python -m haops.targets.lvs check FILE`: the rules file parse-back."""

import sys

from haops.targets.lvs import main

sys.exit(main(sys.argv[1:]))
