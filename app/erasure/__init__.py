"""Erasure on request: DELETE /v1/users/{user_id} forgets a shopper everywhere."""
