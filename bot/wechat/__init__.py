"""The WeChat Official Account (服务号) channel for residents: callbacks, inbox, sender."""
