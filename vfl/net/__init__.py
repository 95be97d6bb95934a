"""The wire, below every party-to-party conversation: the message codec (:mod:`vfl.net.codec`),
the one way to open a gRPC channel or serve one (:mod:`vfl.net.channel`), the one check of a
caller's certificate identity (:mod:`vfl.net.identity`) and the one table between vfl errors
and gRPC status codes (:mod:`vfl.net.status`)."""
