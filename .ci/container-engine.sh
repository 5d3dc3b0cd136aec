#!/usr/bin/env bash
# Placeholder until the container backend lands (issue 7): exports nothing on its own.
true
