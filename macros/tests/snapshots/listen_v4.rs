// Input:
// #[wsk_endpoint(kind = "listen", addr = "0.0.0.0:8080")]
// pub struct HttpListener {
//     served: core::sync::atomic::AtomicU64,
// }
//
// Output (WSK_BLESS=1 cargo test -p wsk-macros to update):

pub struct HttpListener {
    served: core::sync::atomic::AtomicU64,
}
const _: () = {
    #[automatically_derived]
    impl ::wsk::__private::ListenEndpoint for HttpListener {
        const CONFIG: ::wsk::__private::ListenConfig = ::wsk::__private::ListenConfig {
            name: "HttpListener",
            addr: ::wsk::__private::SocketAddr::from_sockaddr_in_bytes([
                2u8, 0u8, 31u8, 144u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8,
                0u8, 0u8,
            ]),
            max_connections: 64u32,
            exclusive: false,
            v6only: ::core::option::Option::None,
        };
    }
    #[automatically_derived]
    impl ::wsk::Endpoint for HttpListener {
        fn default_addr(&self) -> ::wsk::SocketAddr {
            ::wsk::__private::SocketAddr::from_sockaddr_in_bytes([
                2u8, 0u8, 31u8, 144u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8,
                0u8, 0u8,
            ])
        }
        fn start_at(
            &'static self,
            __wsk_rt: &'static ::wsk::Runtime,
            __wsk_addr: ::wsk::SocketAddr,
        ) -> ::wsk::Result<()> {
            ::wsk::__private::start_listener(self, __wsk_rt, __wsk_addr)
        }
    }
};
