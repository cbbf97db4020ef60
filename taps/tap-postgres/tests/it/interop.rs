//! tap-postgres output loaded by our target-postgres into another database and by
//! PipelineWise's target-postgres (Python), with identical values.
