"""The WeCom (企业微信) self-built app for staff: callbacks, inbox, cards, sender, group chats."""
