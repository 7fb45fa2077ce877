"""Tool 'pyinfra-connect' (decomposition aid, not one of the issue's comparisons): pyinfra's own floor.

A deploy file that declares nothing: `pyinfra -y INVENTORY pyinfra_connect_deploy.py` starts the
CLI, loads the inventory, connects to every host (SSH handshake + auth, in parallel) and exits.
sweep - pyinfra-connect = what the keystone-checks sweep costs beyond pyinfra connecting;
pyinfra-connect - baseline = pyinfra's start-up and connection overhead over the physical floor.
"""
