"""The analysts' reference (schema.md, queries.md), shipped in the wheel as kb.docs so that
`kb docs schema` and `kb query --name` work outside a checkout."""
