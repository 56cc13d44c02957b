#!/usr/bin/env bash
# Fake GPU discovery script for Spark resource scheduling in tests (no GPU needed).
echo '{"name":"gpu","addresses":["0","1"]}'
