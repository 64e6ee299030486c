"""Provider adapters: reward issuers now; inbound verification and sync next."""
