"""The public side of forms, below the HTTP API: reading a submission's body within
bounds (:mod:`.parsing`, :mod:`.bounds`), sanitising it (:mod:`.sanitise`),
validating it against the form's JSON Schema (:mod:`.validation`), the client's
address (:mod:`.addresses`), the resume tokens of ``form-submit`` steps
(:mod:`.tokens`) and captcha verification (:mod:`.captcha`).

Everything here but :mod:`.captcha` is pure: no I/O, no clock.
"""
