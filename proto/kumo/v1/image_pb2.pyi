import datetime

from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ImageStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IMAGE_STATUS_UNSPECIFIED: _ClassVar[ImageStatus]
    IMAGE_STATUS_QUEUED: _ClassVar[ImageStatus]
    IMAGE_STATUS_SAVING: _ClassVar[ImageStatus]
    IMAGE_STATUS_ACTIVE: _ClassVar[ImageStatus]
    IMAGE_STATUS_KILLED: _ClassVar[ImageStatus]
    IMAGE_STATUS_DELETED: _ClassVar[ImageStatus]

class DiskFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DISK_FORMAT_UNSPECIFIED: _ClassVar[DiskFormat]
    DISK_FORMAT_QCOW2: _ClassVar[DiskFormat]
    DISK_FORMAT_RAW: _ClassVar[DiskFormat]

class ImageVisibility(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IMAGE_VISIBILITY_UNSPECIFIED: _ClassVar[ImageVisibility]
    IMAGE_VISIBILITY_PRIVATE: _ClassVar[ImageVisibility]
    IMAGE_VISIBILITY_PUBLIC: _ClassVar[ImageVisibility]
IMAGE_STATUS_UNSPECIFIED: ImageStatus
IMAGE_STATUS_QUEUED: ImageStatus
IMAGE_STATUS_SAVING: ImageStatus
IMAGE_STATUS_ACTIVE: ImageStatus
IMAGE_STATUS_KILLED: ImageStatus
IMAGE_STATUS_DELETED: ImageStatus
DISK_FORMAT_UNSPECIFIED: DiskFormat
DISK_FORMAT_QCOW2: DiskFormat
DISK_FORMAT_RAW: DiskFormat
IMAGE_VISIBILITY_UNSPECIFIED: ImageVisibility
IMAGE_VISIBILITY_PRIVATE: ImageVisibility
IMAGE_VISIBILITY_PUBLIC: ImageVisibility

class Image(_message.Message):
    __slots__ = ("id", "name", "project_id", "disk_format", "visibility", "status", "status_reason", "size_bytes", "virtual_size_bytes", "checksum_sha256", "min_disk_gb", "min_ram_mb", "protected", "properties", "create_time", "update_time")
    class PropertiesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    DISK_FORMAT_FIELD_NUMBER: _ClassVar[int]
    VISIBILITY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUS_REASON_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    VIRTUAL_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_SHA256_FIELD_NUMBER: _ClassVar[int]
    MIN_DISK_GB_FIELD_NUMBER: _ClassVar[int]
    MIN_RAM_MB_FIELD_NUMBER: _ClassVar[int]
    PROTECTED_FIELD_NUMBER: _ClassVar[int]
    PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    project_id: str
    disk_format: DiskFormat
    visibility: ImageVisibility
    status: ImageStatus
    status_reason: str
    size_bytes: int
    virtual_size_bytes: int
    checksum_sha256: str
    min_disk_gb: int
    min_ram_mb: int
    protected: bool
    properties: _containers.ScalarMap[str, str]
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., project_id: _Optional[str] = ..., disk_format: _Optional[_Union[DiskFormat, str]] = ..., visibility: _Optional[_Union[ImageVisibility, str]] = ..., status: _Optional[_Union[ImageStatus, str]] = ..., status_reason: _Optional[str] = ..., size_bytes: _Optional[int] = ..., virtual_size_bytes: _Optional[int] = ..., checksum_sha256: _Optional[str] = ..., min_disk_gb: _Optional[int] = ..., min_ram_mb: _Optional[int] = ..., protected: _Optional[bool] = ..., properties: _Optional[_Mapping[str, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateImageRequest(_message.Message):
    __slots__ = ("image", "request_id")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    image: Image
    request_id: str
    def __init__(self, image: _Optional[_Union[Image, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetImageRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListImagesRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "name", "visibility", "status", "project_id")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VISIBILITY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    name: str
    visibility: ImageVisibility
    status: ImageStatus
    project_id: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., name: _Optional[str] = ..., visibility: _Optional[_Union[ImageVisibility, str]] = ..., status: _Optional[_Union[ImageStatus, str]] = ..., project_id: _Optional[str] = ...) -> None: ...

class ListImagesResponse(_message.Message):
    __slots__ = ("images", "next_page_token")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedCompositeFieldContainer[Image]
    next_page_token: str
    def __init__(self, images: _Optional[_Iterable[_Union[Image, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateImageRequest(_message.Message):
    __slots__ = ("image", "update_mask")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    image: Image
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, image: _Optional[_Union[Image, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class DeleteImageRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class UploadImageDataRequest(_message.Message):
    __slots__ = ("image_id", "expected_sha256", "expected_size_bytes", "data")
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_SHA256_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    expected_sha256: str
    expected_size_bytes: int
    data: bytes
    def __init__(self, image_id: _Optional[str] = ..., expected_sha256: _Optional[str] = ..., expected_size_bytes: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class DownloadImageDataRequest(_message.Message):
    __slots__ = ("image_id", "offset", "length")
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    offset: int
    length: int
    def __init__(self, image_id: _Optional[str] = ..., offset: _Optional[int] = ..., length: _Optional[int] = ...) -> None: ...

class DownloadImageDataResponse(_message.Message):
    __slots__ = ("offset", "data")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    offset: int
    data: bytes
    def __init__(self, offset: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...
