"""Errors are values with the seeds' names (and numbers where a seed gives one).

Raised once at the boundary and reported the same way by every interface: the msgpack API
sends {code, number, message, params}; the XenAPI endpoint sends [code, *params].
"""
from typing import Any

# name -> (number or None, default message)
CODES = {
    # sessions and calls (xapi names)
    "SESSION_INVALID": (None, "the session is unknown or has expired; log in again"),
    "SESSION_AUTHENTICATION_FAILED": (None, "the user name or password is wrong"),
    "RBAC_PERMISSION_DENIED": (None, "the session's role may not call this method"),
    "MESSAGE_METHOD_UNKNOWN": (None, "no such method"),
    "MESSAGE_PARAMETER_COUNT_MISMATCH": (None, "wrong number of arguments"),
    "FIELD_TYPE_ERROR": (None, "an argument has the wrong type"),
    "HANDLE_INVALID": (None, "no object has that reference"),
    "UUID_INVALID": (None, "no object has that uuid"),
    "MAP_DUPLICATE_KEY": (None, "the key is already in the map"),
    "INVALID_VALUE": (None, "a value is out of range"),
    # our wire
    "FRAME_TOO_LARGE": (None, "the request frame is larger than the server accepts"),
    "MALFORMED_REQUEST": (None, "the request is not a msgpack map with a method"),
    # the Cluster seed page
    "INVALID_CLUSTER_STACK": (None, "only the cluster stack 'corosync' is supported"),
    "PIF_ALLOWS_UNPLUG": (None, "the PIF allows unplug"),
    "PIF_NOT_ATTACHED_TO_HOST": (None, "the PIF does not belong to that host"),
    "REQUIRED_PIF_IS_UNPLUGGED": (None, "the PIF is unplugged"),
    "CLUSTER_DOES_NOT_HAVE_ONE_NODE": (None, "the cluster must have exactly one cluster host"),
    "CLUSTER_STACK_IN_USE": (None, "the cluster stack is still in use"),
    "CLUSTERING_DISABLED": (None, "clustering is disabled on a cluster host"),
    "CLUSTER_HOST_IS_LAST": (None, "this is the last cluster host; destroy the cluster instead"),
    "CLUSTER_FORCE_DESTROY_FAILED": (None, "the cluster could not be force-destroyed"),
    "CLUSTER_ALREADY_EXISTS": (None, "a cluster already exists"),
    # quorum and the log
    "CLUSTER_NOT_QUORATE": (None, "this node is not quorate: writes are refused"),
    "CLUSTER_NOT_READY": (None, "this node is still replaying its journal"),
    "CLUSTER_WRITE_UNKNOWN": (None, "the write was not confirmed committed in time; it may still commit"),
    "MEMBERSHIP_CHANGE_IN_PROGRESS": (None, "another membership change is in progress"),
    "NOT_LEADER": (None, "only the Raft leader can do this"),
    "INTERNAL_ERROR": (None, "internal error"),
    # Win32 / MS-CMRP codes (numbers from the seeds and the MS-CMRP method pages)
    "ERROR_INVALID_HANDLE": (0x6, "no such object"),
    "ERROR_INVALID_PARAMETER": (0x57, "a parameter is not valid"),
    "ERROR_INVALID_NAME": (0x7B, "a name needs a character other than space, tab, CR, LF, and no NUL"),
    "ERROR_DIR_NOT_EMPTY": (0x91, "the group still contains resources"),
    "ERROR_ALREADY_EXISTS": (0xB7, "the name is already used by another group"),
    "ERROR_IO_PENDING": (0x3E5, "the operation is in progress"),
    "ERROR_CIRCULAR_DEPENDENCY": (0x423, "the dependency would make a cycle"),
    "ERROR_DEPENDENT_RESOURCE_EXISTS": (0x1389, "another resource depends on this one"),
    "ERROR_DEPENDENCY_NOT_FOUND": (0x138A, "no such dependency"),
    "ERROR_DEPENDENCY_ALREADY_EXISTS": (0x138B, "the dependency already exists"),
    "ERROR_RESOURCE_NOT_FOUND": (0x138F, "no such resource"),
    "ERROR_OBJECT_ALREADY_EXISTS": (0x1392, "the name or id is already used"),
    "ERROR_GROUP_NOT_FOUND": (0x1395, "no such group"),
    "ERROR_HOST_NODE_NOT_GROUP_OWNER": (0x1398, "the reporting node does not own the group"),
    "ERROR_RESOURCE_ONLINE": (0x139B, "the resource is not offline"),
    "ERROR_CORE_RESOURCE": (0x13A2, "the core group cannot be deleted"),
    # winerror.h (numbers confirmed in Microsoft's System Error Codes table, mingw-w64's winerror.h
    # and golang/sys's windows/zerrors_windows.go)
    "ERROR_INVALID_STATE": (0x139F, "the object is not in a state that allows this"),
    "ERROR_CLUSTER_NODE_NOT_FOUND": (0x13B2, "no such cluster node"),
    "ERROR_CLUSTER_NODE_DOWN": (0x13BA, "no node that is up can do this"),
    "ERROR_DEPENDENCY_NOT_ALLOWED": (0x13CD, "the dependency is not allowed"),
    "ERROR_CLUSTER_NODE_PAUSED": (0x13CE, "the node is paused: it takes no group"),
    "ERROR_DEPENDENCY_TREE_TOO_COMPLEX": (0x1729, "the dependency tree is at its maximum depth"),  # 5929
    "ERROR_CLUSTER_RESOURCE_LOCKED_STATUS": (0x1748, "a resource of the group is locked"),
    # 0x174A: MS-CMRP's name; today's winerror.h calls it ERROR_CLUSTER_NODE_DRAIN_IN_PROGRESS
    "ERROR_CLUSTER_NODE_EVACUATION_IN_PROGRESS": (0x174A, "a drain of that node is already in progress"),
    "CLUSTER_SPECIAL_GROUP": (None, "clients may not bring the core group online or offline or change its node list"),
    "AGENT_PROPERTIES_INVALID": (None, "the resource's properties are not valid for its agent"),
    "OPERATION_NOT_FOUND": (None, "no operation has that handle"),
    # recovery domains (IBM i cluster resource groups)
    "DOMAIN_NOT_FOUND": (None, "the group has no recovery domain"),
    "DOMAIN_REQUEST_IN_PROGRESS": (None, "another request on the group's recovery domain is in progress"),
    "DOMAIN_RULE": (None, "the recovery domain's rules refuse this request"),
    "DOMAIN_CALLED_FROM_EXIT_PROGRAM": (None, "a recovery-domain API cannot be called from an exit program"),

}


class ClusterError(Exception):
    def __init__(self, code: str, *params: object, message: str | None = None) -> None:
        if code not in CODES:
            raise ValueError(f"unknown error code {code}")
        self.code = code
        self.number = CODES[code][0]
        self.params = [str(p) for p in params]
        self.message = message or CODES[code][1]
        super().__init__(f"{code}: {self.message}" + (f" ({', '.join(self.params)})" if self.params else ""))

    def to_wire(self) -> dict[str, Any]:
        return {"code": self.code, "number": self.number, "message": self.message, "params": self.params}

    @classmethod
    def from_wire(cls, err: object) -> "ClusterError":
        code = err.get("code") if isinstance(err, dict) else None
        if code not in CODES:
            return cls("INTERNAL_ERROR", message=str(err))
        assert isinstance(err, dict)  # a code in CODES came from a map
        return cls(code, *err.get("params", []), message=err.get("message"))


def failure(code: str, *params: object, message: str | None = None) -> dict[str, Any]:
    """An error as apply returns it: plain data, committed like any other result."""
    return {"error": ClusterError(code, *params, message=message).to_wire()}
