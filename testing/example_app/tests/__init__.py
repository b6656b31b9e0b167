"""The example app's tests (a package, so that they can share helpers)."""
