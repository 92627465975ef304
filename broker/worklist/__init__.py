"""The domain model: worklist entries as DICOM JSON, orders and their changes, patient
changes, statuses, the ordering rules of messages (MSH-7). Pure: no sockets, no Redis."""
