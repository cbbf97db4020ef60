//! target-postgres against a real PostgreSQL (in progress).
