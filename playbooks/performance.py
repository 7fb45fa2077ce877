"""Phase playbook: performance. Slow system or deployment: scrub, ARC vs RAM, swap, load, store space.

Run: pyinfra -y INVENTORY playbooks/performance.py [--data fix=true] [--data report=PATH]
"""

from keystone_checks.frontends.playbook import run_phase

run_phase("performance")
