"""HTTP admission webhook: validating and mutating, AdmissionReview v1 over TLS."""
