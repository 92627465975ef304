"""The MPPS use cases, for every face: create, update and retrieve an MPPS instance.

The DIMSE face (``broker.dicom.mpps``: N-CREATE, N-SET) and the DICOMweb face (PS3.18
chapter 15: create, update, retrieve) call the same :class:`MppsService`, so an instance
created through one is updated, completed and found through the other, with the same
effect on the worklist. The state machine is ``broker.worklist.mpps_steps`` (pure); this
service binds it to the broker's store and its scanner profiles. Each call takes the
decoded request, the caller's AE title (what the instance records as its creator) and
its :class:`~broker.dicom.profiles.ScannerProfile` (a DIMSE caller's from its
association, a DICOMweb client's from its token), and returns an outcome or raises
:class:`~broker.worklist.mpps_rules.MppsRefusal`, whose status each face turns into
its own answer (``broker.dicom.mpps_rules.failure``, ``broker.dicom.mpps_web``).
"""

from __future__ import annotations

from pydicom import Dataset

from broker.common.metrics import BrokerMetrics
from broker.dicom.plan import station_titles
from broker.dicom.profiles import ProfileSet, ScannerProfile
from broker.store.mpps import MppsStore
from broker.worklist.mpps_rules import MppsRefusal, MppsStatus
from broker.worklist.mpps_steps import Created, MppsProfile, MppsSteps, Updated

__all__ = ["Created", "MppsService", "Updated"]


class MppsService(MppsSteps):
    """``create``, ``update`` and ``retrieve`` (``MppsSteps``) on the broker's
    :class:`MppsStore`, and the profile a calling AE title gets (``profile_for``); each
    instance created and each update counted in ``metrics`` (``mwl_broker_mpps_events``)."""

    def __init__(
        self, store: MppsStore, profiles: ProfileSet, metrics: BrokerMetrics | None = None
    ) -> None:
        super().__init__(store, station_titles)
        self._profiles = profiles
        self._metrics = metrics or BrokerMetrics()
        events = self._metrics.mpps_events
        self._created = events("created")
        self._updated = {  # by the instance's status after the update
            "IN PROGRESS": events("updated"),
            "COMPLETED": events("completed"),
            "DISCONTINUED": events("discontinued"),
        }

    def create(
        self, attributes: Dataset | None, *, uid: str | None, aet: str, profile: MppsProfile
    ) -> Created:
        created = super().create(attributes, uid=uid, aet=aet, profile=profile)
        self._created.inc()
        return created

    def update(
        self, uid: str, changes: Dataset | None, *, aet: str, profile: MppsProfile
    ) -> Updated:
        updated = super().update(uid, changes, aet=aet, profile=profile)
        counter = self._updated.get(updated.result.status)
        if counter is not None:
            counter.inc()
        return updated

    def profile_for(self, ae_title: str, address: str) -> ScannerProfile:
        """The caller's profile (``ProfileSet.for_caller``), or 0x0124 Refused: not
        authorized (PS3.7 Annex C)."""
        profile = self._profiles.for_caller(ae_title, address)
        if profile is None:
            raise MppsRefusal(
                MppsStatus.NOT_AUTHORIZED, "this calling AE title or address may not use MPPS"
            )
        return profile
