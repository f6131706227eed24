"""The emulator's own tests, over real HTTP on 127.0.0.1: that it answers as Klaviyo documents, that
its modes and faults do what they say, and that its truth oracle agrees with what it serves."""
