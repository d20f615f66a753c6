"""The GitHub door: webhooks in, checks/comments out, reviews as the gate."""
