variable "mesh" {
  description = "The mesh's name."
  type        = string
  default     = "shop"
}

variable "canary_weight" {
  description = "Percent of the storefront's traffic that goes to the canary (0 to 100)."
  type        = number
  default     = 10
}

variable "xds_server" {
  description = "host:port of Interlock's xDS server, written into the proxy bootstrap."
  type        = string
  default     = "xds.example.com:443"
}
