"""The Redis key schema: every key the broker uses is built here, nowhere else.

Layout (``{p}`` is the configurable prefix, ``mwl`` by default). A part written
``={…}`` is a pseudonym of a received value (below), never the value itself:

    {p}:entry:{id}            hash  ds (DICOM JSON), order (its order key), idx (JSON list
                                    of index refs), status (current SPS status, overlaid
                                    on ds when read), origin (its [hl7_senders] name),
                                    ofield (={order key}, for the outbound queue), cid
                                    (the correlation ID of its message, with the origin)
                                    and mver (the number of the mapping version that made it)
    {p}:order-status          hash  ={order key} -> its last SPS status (a cancel before
                                    its NW leaves one here, so the late NW changes nothing)
    {p}:order-time            hash  ={order key} -> UTC start of the newest MSH-7 applied to
                                    it, "YYYYMMDDHHMMSS.ffffff" (broker.worklist.ordering):
                                    an older message for the order changes nothing
    {p}:order={order key}     set   entry ids of one order
    {p}:idx:all               set   every entry id
    {p}:idx:aet:{AE}          set   entry ids by Scheduled Station AE Title
    {p}:idx:mod:{CT}          set   entry ids by Modality
    {p}:idx:pid={id}          set   entry ids by Patient ID
    {p}:idx:acc={accession}   set   entry ids by Accession Number
    {p}:idx:date              zset  entry ids scored by SPS Start Date (YYYYMMDD)
    {p}:dedup:{app}|{fac}|{control id}   string  JSON {digest, ack} with a TTL

Patients (``broker.store.patients``), written by ADT messages only:

    {p}:patient={id}          hash  ds (DICOM JSON: the patient-level attributes the ADT
                                    messages carried, PatientID included); overlaid on every
                                    entry of the patient, now and when an order arrives later
    {p}:patient-time          hash  ={id} -> MSH-7 (UTC) of the newest ADT applied to it
    {p}:alias={old id}        string  the surviving Patient ID after an A40 merge or A47
                                    change of identifier; orders and ADTs with the old ID
                                    are applied to the surviving one. TTL: patient_alias_days
    {p}:merged={id}           set   the old IDs whose alias names {id}: a merge of {id} into
                                    another patient points them there too, so an alias is one
                                    hop; at most MAX_MERGED_IDS. TTL: patient_alias_days

Message log (``broker.store.msglog``); ids come from one counter, and every
index sorted set is scored by id so that listing pages by id, newest first:

    {p}:msg:{id}              hash  raw, ack, header, outcome, error, mapping, order_keys,
                                    entry_ids; TTL = retention, none while on the error list
    {p}:msglog:seq            string  the id counter (INCR)
    {p}:msglog:all            zset  every logged id
    {p}:msglog:time           zset  every logged id scored by received time (ms): age trimming
    {p}:msglog:errors         zset  the error list: ids waiting for reprocess or dismissal
    {p}:msglog:refs           hash  id -> JSON of its index entries (outlives the TTL'd hash)
    {p}:msglog:bytes          string  raw bytes the log's messages hold (its byte budget)
    {p}:msglog:outcome:{o}    zset  ids by outcome (accepted, duplicate, error, ...)
    {p}:msglog:type:{T^E}     zset  ids by message type
    {p}:msglog:sender:{app}   zset  ids by sending application (MSH-3 as received)
    {p}:msglog:warnings       zset  ids answered with warnings (ERR-4 W: values cut to fit)
    {p}:msglog:cid            zset  score 0, members "{control id}\\x1f{id}": lookup by MSH-10

Modality Performed Procedure Steps (``broker.store.mpps``) and retention
(``broker.store.retention``):

    {p}:mpps:{sop instance uid}   hash  ds (DICOM JSON of the instance as created and set),
                                    status (Performed Procedure Step Status), entries (JSON
                                    list of the linked entry ids), refs (JSON list of its
                                    mpps-idx memberships), aet (calling AE), created, updated
                                    (epoch seconds)
    {p}:mpps-idx:time         zset  every instance, scored by its last change (epoch seconds)
    {p}:mpps-idx:study={uid}  set   instance UIDs by Study Instance UID (of its step items)
    {p}:mpps-idx:acc={acc}    set   instance UIDs by Accession Number (of its step items)
    {p}:mpps-events           stream  one record per N-CREATE / N-SET, capped (MAXLEN ~),
                                    for the RIS notifier: event, uid, status, aet, entries,
                                    orders, ds
    {p}:out:seq               string  outbound event ids (INCR; broker.store.outbound)
    {p}:out:{dest}:queue      list  event ids waiting for destination {dest}, oldest first
    {p}:out:{dest}:dead       zset  parked event ids (dead letters), scored by id
    {p}:out:{dest}:held       hash  ={order key} -> parked events of that order (its later
                                    events park behind them)
    {p}:out:{dest}:ev:{id}    hash  one event: order, hold (={order key}), entry, status,
                                    source, at, ds, control, state, reason, err, attempts, msg,
                                    cid (the correlation ID of the order's message)
    {p}:out:{dest}:lease      string  the token of the process sending to {dest} (PX)
    {p}:ready                 string  the readiness check's write (``/readyz``; PX 10 s)
    {p}:ended                 zset  entry ids whose step is over (COMPLETED, CANCELED,
                                    DISCONTINUED), scored by when it ended (epoch seconds;
                                    MPPS writes the exact time, the purge marks the others)

Audit trail (``broker.audit``):

    {p}:audit                 stream  one record per security-relevant event, capped (MAXLEN ~
                                    audit_max_events); no patient data outside its ``phi`` field
    {p}:audit:export          hash  the syslog export's position (last id sent) and lease

Users, API tokens and sessions of the admin console (``broker.store.users``):

    {p}:auth:users            hash  login -> JSON {role, hash (Argon2id), disabled, created,
                                    last_login, epoch}; no password, only its hash
    {p}:auth:tokens           hash  token id -> JSON {role, label, scanner, digest (SHA-256
                                    of the token's secret), created, by}
    {p}:auth:session:{h}      string  JSON {user, csrf, expires, epoch}; {h} is the SHA-256 of
                                    the session id (the cookie), TTL = the idle timeout
    {p}:auth:fail:user:{h}    string  failed logins for one login name ({h}: its SHA-256),
                                    TTL = the throttling window
    {p}:auth:fail:addr:{a}    string  failed logins from one source address, the same TTL

Logins are staff accounts, not patient data: they are kept as they are, as hash
fields (not key names), so that ``HKEYS`` shows who has an account and no builder
needs the site secret (``mwl-broker user add`` works before the first ``serve``).
Session ids and login names of failures are hashed in key names: a session id read
off a key listing would be a login, and a failed login's "name" can be anything.

The key schema itself (``broker.store.key_migration``):

    {p}:keyschema             hash  version ("2"), fingerprint (of the site secret, below),
                                    done:{step} (steps of a migration that are over)
    {p}:keyschema:lock        string  held (PX, renewed) by the broker migrating the keys
    {p}:keyschema:scratch     any   a hash or stream being rebuilt by the migration

**Pseudonyms.** Key names and hash fields show up where the data does not:
``SCAN`` listings, ``--bigkeys``, ``SLOWLOG``, key-space notifications, monitoring
exporters, tracebacks. So no Patient ID, accession number, order key (placer,
filler or accession number) or Study Instance UID is written there; what is written
is its pseudonym: HMAC-SHA256 keyed with the site secret (``redis_key_secret``) over
a kind (``pid``, ``acc``, ``order``, ``uid``, ``entry``) and the value, its first 120
bits as 30 hexadecimal digits (a collision among ten million values has odds of
about 1 in 10^22; hexadecimal costs a twentieth of base32 in Python, and each order
makes several). The kind keeps one value's pseudonyms apart across kinds. Without
the secret a pseudonym cannot be computed, so it cannot confirm a guess (an
accession number is easy to guess); the secret never goes to Redis, and
``{p}:keyschema`` holds only its fingerprint (an HMAC of a fixed text), so that a
broker started with another secret refuses to start instead of missing every key.

Study Instance UIDs are not patient identifiers by definition, but they are
pseudonymised like one: RIS systems often build them from the accession number,
and this broker's own ``uid`` transform derives them from the order key without a
secret. Not pseudonymised, on purpose: station AE titles and modalities (the
site's configuration, a short list everyone knows, worth reading in ``redis-cli``),
MSH-3/MSH-4/MSH-10 (sender and message identity, not patient data: the message log
indexes them as they are), and MPPS SOP Instance UIDs (made by the modality for
the performed step, PS3.4 F.7.2.1, with no order or patient information in them).

**Entry ids** are keyed too: schema 1 used the unkeyed sha256 of the order key and
the step's ordinal, which confirms a guessed accession number to anyone who can list
keys. The id is now the pseudonym (kind ``entry``) of that schema-1 id, so the
migration turns any stored reference into the new id from the old id alone, also
where the entry is gone; 30 digits, so never mistaken for a 32-digit schema-1 id.
Values (entry datasets, the alias's target, a message's raw text) hold patient data
as before: Redis access is access to the worklist.

Schema 1 wrote ``{p}:idx:pid:{id}`` and the like, with ``\\``, ``:`` and ``|``
escaped by a backslash; a ``=`` never follows the kind in a schema-1 name, so the
two never meet (``broker.store.schema1``).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

from broker.worklist.model import DedupKey

__all__ = ["MAX_MERGED_IDS", "MIN_SECRET_BYTES", "SCHEMA_VERSION", "KeySchema", "schema1_entry_id"]

SCHEMA_VERSION = "2"
MIN_SECRET_BYTES = 32  # redis_key_secret; ``mwl-broker init`` writes 43 characters
MAX_MERGED_IDS = 100  # old Patient IDs one patient may carry as aliases (an A40 past it: AE)
_FINGERPRINT_TEXT = b"mwl-broker redis_key_secret fingerprint"


def _part(value: str) -> str:
    """Keep key parts readable and unambiguous: escape the separators we use."""
    return value.replace("\\", "\\\\").replace(":", "\\:").replace("|", "\\|")


def schema1_entry_id(order_key: str, ordinal: int) -> str:
    """The entry id schema 1 gave the ``ordinal``-th step of an order (unkeyed)."""
    return hashlib.sha256(f"{order_key}\x1f{ordinal}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class KeySchema:
    """Builds every Redis key from one prefix; ``secret`` (the site's ``redis_key_secret``)
    keys the pseudonyms, and is needed only by the builders that take a received value."""

    prefix: str = "mwl"
    secret: bytes | None = field(default=None, repr=False)
    _mac: hmac.HMAC | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.secret is not None:
            if len(self.secret) < MIN_SECRET_BYTES:
                raise ValueError(f"the key secret must be at least {MIN_SECRET_BYTES} bytes")
            mac = hmac.new(self.secret, digestmod=hashlib.sha256)  # copied for each pseudonym
            object.__setattr__(self, "_mac", mac)

    @property
    def keyed(self) -> bool:
        """Whether the site secret was given (every builder works)."""
        return self._mac is not None

    # -- pseudonyms -------------------------------------------------------

    def pseudonym(self, kind: str, value: str) -> str:
        """The keyed pseudonym of ``value`` (see the module docstring)."""
        if self._mac is None:
            raise ValueError(
                f"keys for {kind} values need the site secret (redis_key_secret); "
                "this KeySchema was built without one"
            )
        mac = self._mac.copy()
        mac.update(f"{kind}\x1f{value}".encode())
        return mac.digest()[:15].hex()

    def fingerprint(self) -> str:
        """What ``{p}:keyschema`` keeps of the secret: an HMAC of a fixed text, never the secret."""
        if self._mac is None:
            raise ValueError("a fingerprint needs the site secret (redis_key_secret)")
        mac = self._mac.copy()
        mac.update(_FINGERPRINT_TEXT)
        return mac.hexdigest()[:32]

    def entry_id(self, order_key: str, ordinal: int) -> str:
        """A stable entry id for the ``ordinal``-th scheduled step of an order."""
        return self.entry_id_from_schema1(schema1_entry_id(order_key, ordinal))

    def entry_id_from_schema1(self, old_id: str) -> str:
        """The id of the entry schema 1 called ``old_id``."""
        return self.pseudonym("entry", old_id)

    def order_field(self, order_key: str) -> str:
        """An order's field in ``order-status`` and ``order-time``."""
        return self.pseudonym("order", order_key)

    def patient_field(self, patient_id: str) -> str:
        """A patient's field in ``patient-time``."""
        return self.pseudonym("pid", patient_id)

    # -- keys -------------------------------------------------------------

    def entry(self, entry_id: str) -> str:
        return f"{self.prefix}:entry:{entry_id}"

    def entry_prefix(self) -> str:
        return f"{self.prefix}:entry:"

    def order(self, order_key: str) -> str:
        return self.order_and_field(order_key)[0]

    def order_and_field(self, order_key: str) -> tuple[str, str]:
        """:meth:`order` and :meth:`order_field`, from one pseudonym."""
        field = self.order_field(order_key)
        return f"{self.prefix}:order={field}", field

    def order_status(self) -> str:
        return f"{self.prefix}:order-status"

    def order_time(self) -> str:
        return f"{self.prefix}:order-time"

    def all_entries(self) -> str:
        return f"{self.prefix}:idx:all"

    def by_station(self, ae_title: str) -> str:
        return f"{self.prefix}:idx:aet:{_part(ae_title)}"

    def by_modality(self, modality: str) -> str:
        return f"{self.prefix}:idx:mod:{_part(modality)}"

    def by_patient(self, patient_id: str) -> str:
        return f"{self.prefix}:idx:pid={self.pseudonym('pid', patient_id)}"

    def by_accession(self, accession: str) -> str:
        return f"{self.prefix}:idx:acc={self.pseudonym('acc', accession)}"

    def patient(self, patient_id: str) -> str:
        return f"{self.prefix}:patient={self.pseudonym('pid', patient_id)}"

    def patient_time(self) -> str:
        """Hash: :meth:`patient_field` -> MSH-7 (UTC, ``ordering``) of the newest ADT applied."""
        return f"{self.prefix}:patient-time"

    def patient_alias(self, patient_id: str) -> str:
        return f"{self.prefix}:alias={self.pseudonym('pid', patient_id)}"

    def merged_into(self, patient_id: str) -> str:
        """Set: the old Patient IDs whose alias names ``patient_id``."""
        return f"{self.prefix}:merged={self.pseudonym('pid', patient_id)}"

    def by_date(self) -> str:
        return f"{self.prefix}:idx:date"

    def dedup(self, key: DedupKey) -> str:
        parts = (key.sending_application, key.sending_facility, key.control_id)
        return f"{self.prefix}:dedup:" + "|".join(_part(p) for p in parts)

    def message(self, message_id: str) -> str:
        return f"{self.prefix}:msg:{message_id}"

    def message_prefix(self) -> str:
        return f"{self.prefix}:msg:"

    def message_seq(self) -> str:
        return f"{self.prefix}:msglog:seq"

    def message_log(self) -> str:
        return f"{self.prefix}:msglog:all"

    def message_times(self) -> str:
        return f"{self.prefix}:msglog:time"

    def message_errors(self) -> str:
        return f"{self.prefix}:msglog:errors"

    def message_refs(self) -> str:
        return f"{self.prefix}:msglog:refs"

    def message_bytes(self) -> str:
        """Raw bytes held by the log's messages (its byte budget is checked against it)."""
        return f"{self.prefix}:msglog:bytes"

    def messages_by_outcome(self, outcome: str) -> str:
        return f"{self.prefix}:msglog:outcome:{_part(outcome)}"

    def messages_by_type(self, message_type: str) -> str:
        return f"{self.prefix}:msglog:type:{_part(message_type)}"

    def messages_by_sender(self, sending_application: str) -> str:
        return f"{self.prefix}:msglog:sender:{_part(sending_application)}"

    def messages_by_control_id(self) -> str:
        return f"{self.prefix}:msglog:cid"

    def messages_with_warnings(self) -> str:
        return f"{self.prefix}:msglog:warnings"

    def mpps(self, sop_instance_uid: str) -> str:
        return f"{self.prefix}:mpps:{_part(sop_instance_uid)}"

    def mpps_by_time(self) -> str:
        return f"{self.prefix}:mpps-idx:time"

    def mpps_by_study(self, study_instance_uid: str) -> str:
        return f"{self.prefix}:mpps-idx:study={self.pseudonym('uid', study_instance_uid)}"

    def mpps_by_accession(self, accession: str) -> str:
        return f"{self.prefix}:mpps-idx:acc={self.pseudonym('acc', accession)}"

    def mpps_events(self) -> str:
        return f"{self.prefix}:mpps-events"

    def outbound_prefix(self) -> str:
        """``{p}:out:``; a destination's keys are :meth:`outbound` (Lua builds them alike)."""
        return f"{self.prefix}:out:"

    def outbound(self, destination: str, part: str) -> str:
        """``{p}:out:{destination}:{part}``: queue, dead, held, lease, ev:{id}."""
        return f"{self.prefix}:out:{destination}:{part}"

    def entries_ended(self) -> str:
        return f"{self.prefix}:ended"

    def ready_probe(self) -> str:
        """``{p}:ready``: the readiness check's tiny write (a token with a short TTL)."""
        return f"{self.prefix}:ready"

    def audit(self) -> str:
        return f"{self.prefix}:audit"

    def audit_export(self) -> str:
        return f"{self.prefix}:audit:export"

    def users(self) -> str:
        return f"{self.prefix}:auth:users"

    def tokens(self) -> str:
        return f"{self.prefix}:auth:tokens"

    def session(self, session_hash: str) -> str:
        return f"{self.prefix}:auth:session:{session_hash}"

    def login_failures_by_user(self, name_hash: str) -> str:
        return f"{self.prefix}:auth:fail:user:{name_hash}"

    def login_failures_by_address(self, address: str) -> str:
        return f"{self.prefix}:auth:fail:addr:{_part(address)}"

    def key_schema(self) -> str:
        return f"{self.prefix}:keyschema"

    def replica_confirm(self) -> str:
        """A counter written for the replicas to confirm (``lua/replica_confirm.lua``)."""
        return f"{self.prefix}:replicas:confirm"

    def key_schema_lock(self) -> str:
        return f"{self.prefix}:keyschema:lock"

    def key_schema_scratch(self) -> str:
        return f"{self.prefix}:keyschema:scratch"
