"""What every phase uses: the user-error type, typed params, atomic outputs, repository facts."""
