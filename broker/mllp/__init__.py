"""The MLLP face: framing (sans-I/O), the asyncio server and its connections, and the client
``mwl-broker send`` uses. Transport only: what a message means is ``broker.services``' job."""
