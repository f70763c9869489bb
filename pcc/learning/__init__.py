"""pcc.learning"""
