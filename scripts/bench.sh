#!/usr/bin/env bash
echo "bench: not written yet" >&2
exit 1
