"""What combines a version with its lineage and validation: registration (which writes all three), the version with
everything its page and JSON show, the versions table, the stage look-up, and the comparison page's reads.

It sits above versions, lineage and validation and below approvals (README, "How the apps depend on each other"):
versions never imports lineage or validation; this package does, on their behalf.
"""
