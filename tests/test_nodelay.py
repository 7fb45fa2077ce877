"""TCP_NODELAY really gets set on a pyinfra SSH connection to a real sshd."""

import socket

import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all

from keystone_checks.engine import nodelay


@pytest.mark.sshd
def test_nodelay_set_on_pyinfra_ssh_socket(sshd):
    inventory = Inventory(([("h", sshd.host_data())], {}))
    state = State(inventory, Config())
    connect_all(state)
    host = inventory.get_host("h")
    sock = host.connector.client.get_transport().sock
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0, "paramiko leaves Nagle on"
    assert nodelay.enable(host) is True
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    host.disconnect()


def test_nodelay_is_a_noop_for_local_connector():
    inventory = Inventory((["@local"], {}))
    state = State(inventory, Config())
    connect_all(state)
    assert nodelay.enable(inventory.get_host("@local")) is False
