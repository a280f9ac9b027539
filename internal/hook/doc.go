// Package hook runs the user's scripts (script.fence, script.post.promotion, ...) strictly, with EFM's placeholders, and delivers notifications by script and email.
package hook
