"""Challenge scoring: per-case metrics (DSC, boundary DSC, HD, HD95), folder evaluation and ranking of submissions."""
