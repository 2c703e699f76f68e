import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ControllerState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONTROLLER_STATE_UNSPECIFIED: _ClassVar[ControllerState]
    CONTROLLER_STATE_UP: _ClassVar[ControllerState]
    CONTROLLER_STATE_LOST: _ClassVar[ControllerState]
CONTROLLER_STATE_UNSPECIFIED: ControllerState
CONTROLLER_STATE_UP: ControllerState
CONTROLLER_STATE_LOST: ControllerState

class Controller(_message.Message):
    __slots__ = ("id", "hostname", "endpoint", "node_endpoint", "version", "state", "node_sessions", "start_time", "last_seen_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    NODE_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    NODE_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    hostname: str
    endpoint: str
    node_endpoint: str
    version: str
    state: ControllerState
    node_sessions: int
    start_time: _timestamp_pb2.Timestamp
    last_seen_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., hostname: _Optional[str] = ..., endpoint: _Optional[str] = ..., node_endpoint: _Optional[str] = ..., version: _Optional[str] = ..., state: _Optional[_Union[ControllerState, str]] = ..., node_sessions: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_seen_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListControllersRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListControllersResponse(_message.Message):
    __slots__ = ("controllers", "next_page_token")
    CONTROLLERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    controllers: _containers.RepeatedCompositeFieldContainer[Controller]
    next_page_token: str
    def __init__(self, controllers: _Optional[_Iterable[_Union[Controller, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RotateTokenKeyRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RotateTokenKeyResponse(_message.Message):
    __slots__ = ("key_id", "removed_key_ids")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    REMOVED_KEY_IDS_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    removed_key_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, key_id: _Optional[str] = ..., removed_key_ids: _Optional[_Iterable[str]] = ...) -> None: ...
