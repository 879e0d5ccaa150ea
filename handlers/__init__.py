"""Real Lambda handlers, one module per connection pattern, deployable to AWS as they are."""
