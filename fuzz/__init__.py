"""A deterministic mutational fuzzer over decode -> normalize -> line protocol (`make fuzz`)."""
