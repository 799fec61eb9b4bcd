"""Provisioning: make AWS match the ``ApiGateway`` records, as an explicit plan/apply step.

Nothing here runs on ``Model.save()``. Commands, admin actions and your own code all go through
:class:`Provisioner`::

    provisioner = Provisioner(ApiGateway.objects.get(name="chat"), progress=print)
    provisioner.plan()      # the calls it would make, reading AWS only
    provisioner.apply()     # make them, recording ids as it goes
    provisioner.drift()     # what differs (someone edited an integration in the console)
    provisioner.teardown()  # delete what it created, nothing else
"""

from __future__ import annotations

from .clients import make_client
from .desired import DesiredApi, desired_api, provisioned_secret
from .plan import Difference, Plan, Step
from .provisioner import Busy, Provisioner, ProvisioningError

__all__ = [
    "Busy",
    "DesiredApi",
    "Difference",
    "Plan",
    "Provisioner",
    "ProvisioningError",
    "Step",
    "desired_api",
    "make_client",
    "provisioned_secret",
]
