"""Conversations with patients: open questions (what a journey asked and is waiting for),
routing a reply to the question it answers, and staff writing to patients.

* `questions` - record, answer and expire open questions (models.conversation.OpenQuestion).
* `routing`   - which journey (or person) an inbound message is for; used by conversations.inbound.
* `staff`     - a staff member's free-text message on the patient's channel.
"""
