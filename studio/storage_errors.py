"""Object storage's errors, apart from its client: the API's error handler and the pages'
middleware recognise them without importing boto."""


class ObjectStoreError(Exception):
    """Object storage could not give or take a file; the message says which and why."""


class ObjectMissing(ObjectStoreError):
    """The file is neither on this host nor in object storage."""


class ObjectCorrupt(ObjectStoreError):
    """The file fetched from object storage does not match its checksum."""
