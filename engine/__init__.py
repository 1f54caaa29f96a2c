"""The µCode engine: prompts, code extraction, generator and verifier backends, and the
multi-turn Best-of-N search loop. No HTTP here; the server and training both call into it."""
